#!/bin/bash
# The proxy's admin API from inside the container (the JRE image has no curl):
#   docker compose exec megallm-proxy /app/admin.sh reload-keys        # re-read data/keys.txt
#   docker compose exec megallm-proxy /app/admin.sh reset-failed-keys
#   docker compose exec megallm-proxy /app/admin.sh keys               # masked keys and states
#   docker compose exec megallm-proxy /app/admin.sh health
# It connects from the container's own loopback and sends ADMIN_TOKEN when the container has
# one, so it works with and without a token. Prints the answer's body; exit 0 on a 2xx.
case "${1:-}" in
  reload-keys)       method=POST path=/admin/reload-keys ;;
  reset-failed-keys) method=POST path=/admin/reset-failed-keys ;;
  keys)              method=GET  path=/admin/keys ;;
  health)            method=GET  path=/health ;;
  *) echo "usage: admin.sh reload-keys | reset-failed-keys | keys | health" >&2; exit 2 ;;
esac
exec 3<>"/dev/tcp/127.0.0.1/${PORT:-8000}" || exit 1
auth=""
if [[ -n ${ADMIN_TOKEN:-} ]]; then
  auth="Authorization: Bearer ${ADMIN_TOKEN}"$'\r\n'
fi
printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n' \
  "$method" "$path" "$auth" >&3
IFS= read -r -t 10 status <&3 || { echo "admin.sh: no answer from the proxy" >&2; exit 1; }
while IFS= read -r -t 10 line <&3 && [[ -n ${line%$'\r'} ]]; do :; done   # headers
cat <&3
echo
[[ $status == "HTTP/1.1 2"* ]]
