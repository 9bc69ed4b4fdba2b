#!/bin/bash
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
T25=/usr/lib/jvm/temurin-25-jdk-amd64/bin/java
IMG="-XX:MaxRAM=2g -XX:MaxRAMPercentage=50 -XX:+UseParallelGC -XX:+ExitOnOutOfMemoryError --enable-native-access=ALL-UNNAMED"
SER="-XX:MaxRAM=2g -XX:MaxRAMPercentage=50 -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError --enable-native-access=ALL-UNNAMED"
held() { name=$1; jar=$2; jv=$3; opts=$4; $jv -jar $J bench --full --peers proxy --scenarios held --no-profile --proxy-jar $jar --out /tmp/mem/out-$name --proxy-jvm-opts "$opts" > /tmp/mem/$name.log 2>&1
  echo "$name $(grep -E '^\| proxy ' /tmp/mem/out-$name/REPORT.md | head -1)"; }
held d1-old /tmp/mem/old.jar java "-Xmn24m"
held d1-new /tmp/mem/new.jar java "-Xmn24m"
held d1-new-trim /tmp/mem/new.jar java "-Xmn24m -XX:TrimNativeHeapInterval=10000"
held i0-new /tmp/mem/new.jar $T25 "$IMG"
held i1-new /tmp/mem/new.jar $T25 "$IMG -Xmn24m -XX:TrimNativeHeapInterval=10000"
held i2-new /tmp/mem/new.jar $T25 "$SER -Xmn24m -XX:TrimNativeHeapInterval=10000"
