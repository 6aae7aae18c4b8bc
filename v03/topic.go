package v03

import (
	"strings"
	"unicode/utf8"
)

// Defaults shared by publishers and subscribers, as sr3 has them.
const (
	// TopicPrefix is the first topic level of v03 messages.
	TopicPrefix = "v03"
	// Exchange is the exchange subscribers read by default (sr3's
	// "xpublic"); on MQTT it is the first topic level.
	Exchange = "xpublic"
	// MaxAMQPTopic is the longest AMQP routing key in bytes (an AMQP short
	// string); sr3 truncates longer ones.
	MaxAMQPTopic = 255
)

// dirs returns the directories of relPath, without the file name.
func dirs(relPath string) []string {
	p := strings.Trim(relPath, "/")
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return nil
	}
	return strings.Split(p[:i], "/")
}

// AMQPTopic returns the routing key sr3 gives a message for relPath:
// prefix (dot-separated, normally "v03") then relPath's directories, joined
// by dots, with "#" and "*" written as "%23" and "%22" (sr3's escapes) and
// truncated to 255 bytes on a UTF-8 character boundary.
func AMQPTopic(prefix, relPath string) string {
	levels := append(splitNonEmpty(prefix, "."), dirs(relPath)...)
	t := strings.Join(levels, ".")
	t = strings.NewReplacer("#", "%23", "*", "%22").Replace(t)
	if len(t) > MaxAMQPTopic {
		n := MaxAMQPTopic
		for n > 0 && !utf8.RuneStart(t[n]) {
			n--
		}
		t = t[:n]
	}
	return t
}

// MQTTTopic returns the topic sr3 gives a message for relPath on an MQTT
// broker: exchange, prefix (slash-separated, normally "v03") and relPath's
// directories, joined by slashes, with "#" and "+" written as "%23" and
// "%2B".
func MQTTTopic(exchange, prefix, relPath string) string {
	var levels []string
	if exchange != "" {
		levels = append(levels, exchange)
	}
	levels = append(levels, splitNonEmpty(prefix, "/")...)
	levels = append(levels, dirs(relPath)...)
	t := strings.Join(levels, "/")
	return strings.NewReplacer("#", "%23", "+", "%2B").Replace(t)
}

func splitNonEmpty(s, sep string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, sep)
}
