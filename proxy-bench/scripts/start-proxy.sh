#!/bin/bash
# Starts the proxy jar on CPU 1 in front of a mock on 127.0.0.1:${MOCK_PORT:-18900}, for wrk-ab.sh.
# usage: start-proxy.sh <dir> <port> <jar> "<JDK_JAVA_OPTIONS or empty>" <java> [jvm args...]
# EXTRA_ENV="NAME=value ..." adds settings; KEYS_FILE defaults to <dir>/../keys.txt.
d=$1; port=$2; jar=$3; img=$4; jv=$5; shift 5; mkdir -p "$d"
(cd "$d" && env MEGALLM_BASE_URL=http://127.0.0.1:${MOCK_PORT:-18900}/v1 HOST=127.0.0.1 PORT=$port \
  KEYS_FILE=${KEYS_FILE:-$d/../keys.txt} LOG_LEVEL=WARNING LOG_DIR=$d/logs SHUTDOWN_GRACE=1 \
  ${img:+"JDK_JAVA_OPTIONS=$img"} $EXTRA_ENV taskset -c 1 $jv "$@" -jar $jar > $d/out.log 2>&1 &)
