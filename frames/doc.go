// Package frames writes and reads a file's compressed frames: the file
// cut into frames of a fixed size, each compressed on its own and stored
// back to back, so that any frame can be fetched with one byte range and
// decoded alone.
//
// A publisher writes them beside a file's control file (Writer); a client
// that lacks most of a frame's blocks fetches the compressed frame instead
// of the blocks (Source), and gets the same bytes for fewer: on software
// releases the frames are about half the file. What a frame decodes to is
// checked like any fetched block.
package frames
