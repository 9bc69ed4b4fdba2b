#!/bin/bash
# Docker health check for megallm-proxy: GET /health on 127.0.0.1:$PORT with bash's /dev/tcp,
# since the JRE base image has no curl or wget. Exit 0 on HTTP 200 (a key is available), else 1.
exec 3<>"/dev/tcp/127.0.0.1/${PORT:-8000}" || exit 1
printf 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 || exit 1
IFS= read -r -t 4 status <&3 || exit 1
[[ $status == "HTTP/1.1 200"* ]]
