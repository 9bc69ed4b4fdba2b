#!/bin/bash
# usage: startp.sh dir port jar "image opts or empty" javabin [jvm args...]
d=$1; port=$2; jar=$3; img=$4; jv=$5; shift 5; mkdir -p $d; (cd $d && env MEGALLM_BASE_URL=http://127.0.0.1:18900/v1 HOST=127.0.0.1 PORT=$port KEYS_FILE=/tmp/p16/keys.txt LOG_LEVEL=WARNING LOG_DIR=$d/logs SHUTDOWN_GRACE=1 ${img:+"JDK_JAVA_OPTIONS=$img"} $EXTRA_ENV taskset -c 1 $jv "$@" -jar $jar > $d/out.log 2>&1 &)
