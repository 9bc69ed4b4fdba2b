#!/bin/bash
# Before/after in one run: the jar of 7f8bbef (main at the start of issue 16) and of h-perf, each as
# users start it (java -jar, JDK 17 defaults) and as the image runs it (Temurin 25 with the image's
# JDK_JAVA_OPTIONS of that commit, -XX:MaxRAM=2g for compose's memory limit); Nginx beside them.
# Each peer alone on CPU 1, wrk and the mock on CPU 0.
cd /tmp/perf
T25=/usr/lib/jvm/temurin-25-jdk-amd64/bin/java
OLD_IMG="-XX:MaxRAMPercentage=50 -XX:+UseZGC -XX:+ExitOnOutOfMemoryError --enable-native-access=ALL-UNNAMED"
NEW_IMG="-XX:MaxRAMPercentage=50 -XX:+UseParallelGC -XX:+ExitOnOutOfMemoryError --enable-native-access=ALL-UNNAMED"
startp() { d=$1; port=$2; jar=$3; img=$4; jv=$5; shift 5; mkdir -p $d; (cd $d && env MEGALLM_BASE_URL=http://127.0.0.1:18900/v1 HOST=127.0.0.1 PORT=$port KEYS_FILE=/tmp/perf/keys.txt LOG_LEVEL=WARNING LOG_DIR=$d/logs SHUTDOWN_GRACE=1 ${img:+"JDK_JAVA_OPTIONS=$img"} taskset -c 1 $jv "$@" -jar $jar > $d/out.log 2>&1 &); }
startp /tmp/perf/ba1 18941 /tmp/perf/base/megallm-proxy.jar "" java
startp /tmp/perf/ba2 18942 /tmp/perf/v1/megallm-proxy.jar "" java -Xlog:gc,safepoint:file=/tmp/perf/ba2-gc.log:uptime -XX:+PrintCompilation
startp /tmp/perf/ba3 18943 /tmp/perf/base/megallm-proxy.jar "$OLD_IMG" $T25 -XX:MaxRAM=2g
startp /tmp/perf/ba4 18944 /tmp/perf/v1/megallm-proxy.jar "$NEW_IMG" $T25 -XX:MaxRAM=2g
# what-if, not shipped: the image's JVM starting with a 256 MB heap instead of 1/64 of 2 GB (32 MB)
startp /tmp/perf/ba5 18945 /tmp/perf/v1/megallm-proxy.jar "$NEW_IMG -XX:InitialRAMPercentage=12.5" $T25 -XX:MaxRAM=2g
sleep 8
for p in 18941 18942 18943 18944 18945; do pid=$(ss -ltnp "sport = :$p" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); echo "$p pid $pid $(jcmd $pid VM.flags 2>/dev/null | grep -o -- '-XX:+Use[A-Za-z]*GC')"; done
for p in 18941 18942 18943 18944 18945; do taskset -c 0 wrk -t1 -c64 -d20s -s /tmp/perf/post.lua http://127.0.0.1:$p/v1/chat/completions > /dev/null; taskset -c 0 wrk -t1 -c256 -d5s -s /tmp/perf/post.lua http://127.0.0.1:$p/v1/chat/completions >/dev/null; done
for c in 16 64 256; do echo "== c=$c at uptime of after-jdk17: $(ps -o etimes= -p $(ss -ltnp "sport = :18942" | grep -o "pid=[0-9]*" | head -1 | cut -d= -f2))"; ./ab.sh $c 5 nginx=18902 before-jdk17=18941 after-jdk17=18942 before-image=18943 after-image=18944 after-image-xms256=18945; done
for p in 18941 18942 18943 18944 18945; do pid=$(ss -ltnp "sport = :$p" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); kill $pid; done
