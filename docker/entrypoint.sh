#!/bin/sh
# megallm-proxy container entry point.
#
# The container starts as root for one thing only: choosing the user the proxy runs as, and
# making the folders it writes its own. A bind-mounted ./logs folder belongs to whoever created
# it on the host:
# - a host user (uid not 0, e.g. you, after `mkdir logs` or a git clone): the proxy runs as that
#   uid/gid, so the host folder and every log file in it stay yours, and running the jar from the
#   checkout afterwards still works;
# - root (Docker created it, or a root shell did): the proxy runs as the image's app user 10001
#   and the folder is handed to it.
# Any file in the writable folders that is not the chosen user's is handed to it. Then setpriv
# drops to that user for good and `exec` replaces this script with java: java is PID 1, never
# root, and receives SIGTERM from `docker stop` itself. Started as non-root (docker run --user,
# compose user:), the script only execs java.
set -eu
APP_UID=10001
APP_GID=10001
if [ "$(id -u)" = 0 ]; then
  owner=$(stat -c %u /app/logs 2>/dev/null || echo 0)
  if [ "$owner" != 0 ]; then
    APP_UID=$owner
    APP_GID=$(stat -c %g /app/logs)
  fi
  for dir in /app/logs /app/state; do
    [ -d "$dir" ] || continue
    # -h: a symbolic link is handed over itself, never what it points to (a link left in logs/
    # would otherwise have root chown its target, anywhere in the container).
    if ! find "$dir" ! -user "$APP_UID" -exec chown -h "$APP_UID:$APP_GID" {} + 2>/dev/null; then
      echo "megallm-proxy: cannot hand $dir to uid $APP_UID; files there may not be written" \
           "(on the host: sudo chown -R $APP_UID:$APP_GID ${dir#/app/})" >&2
    fi
  done
  exec setpriv --reuid="$APP_UID" --regid="$APP_GID" --clear-groups --inh-caps=-all \
       java -jar /app/megallm-proxy.jar "$@"
fi
exec java -jar /app/megallm-proxy.jar "$@"
