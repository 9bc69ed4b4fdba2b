#!/bin/sh
# megallm-proxy container entry point.
#
# The container starts as root for one thing only: a bind-mounted ./logs folder belongs to
# whoever created it on the host (often root), so the app user (uid 10001) could not write
# logs/app.log there. Root hands the folder to uid 10001, then setpriv drops to that user for
# good and `exec` replaces this script with java: java is PID 1, runs as 10001 and receives
# SIGTERM from `docker stop` itself. Started as non-root (docker run --user 10001, compose
# user:), the script only execs java.
set -eu
APP_UID=10001
if [ "$(id -u)" = 0 ]; then
  if ! find /app/logs ! -user "$APP_UID" -exec chown "$APP_UID:$APP_UID" {} + 2>/dev/null; then
    echo "megallm-proxy: cannot hand /app/logs to uid $APP_UID; logs/app.log may not be written" \
         "(on the host: sudo chown -R $APP_UID:$APP_UID logs)" >&2
  fi
  exec setpriv --reuid="$APP_UID" --regid="$APP_UID" --clear-groups --inh-caps=-all \
       java -jar /app/megallm-proxy.jar "$@"
fi
exec java -jar /app/megallm-proxy.jar "$@"
