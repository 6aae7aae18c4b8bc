# nginx.sh — sourced by realpair.sh and bytes.sh: serve_new W NEW FORMAT
# serves the file NEW as W/www/new (control files go beside it in W/www)
# with nginx on a random loopback port, logging every request to
# W/logs/access.log in the log format FORMAT (nginx variables, e.g.
# '$bytes_sent $request_uri'), and sets url to the server's root. The
# caller stops it: kill "$(cat "W/nginx.pid")".
serve_new() {
	local w=$1 new=$2 format=$3 nginx port user=""
	nginx=$(command -v nginx || echo /usr/sbin/nginx)
	mkdir -p "$w/www" "$w/logs"
	ln -s "$new" "$w/www/new"
	port=$((20000 + RANDOM % 12000)) # below the ephemeral ports (32768 up)
	[ "$(id -u)" = 0 ] && user="user root;"
	cat >"$w/nginx.conf" <<EOC
$user
daemon on; worker_processes 1; pid $w/nginx.pid; error_log $w/logs/error.log;
events { worker_connections 64; }
http {
  log_format b '$format';
  access_log $w/logs/access.log b;
  client_body_temp_path $w/logs; proxy_temp_path $w/logs; fastcgi_temp_path $w/logs;
  uwsgi_temp_path $w/logs; scgi_temp_path $w/logs;
  default_type application/octet-stream; sendfile on;
  server { listen 127.0.0.1:$port; root $w/www; }
}
EOC
	"$nginx" -p "$w" -e "$w/logs/error.log" -c "$w/nginx.conf"
	url=http://127.0.0.1:$port
	for _ in $(seq 50); do curl -fs -o /dev/null "$url/new" -r 0-0 && break; sleep 0.1; done
}
