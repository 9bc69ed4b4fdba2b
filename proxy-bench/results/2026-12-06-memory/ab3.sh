#!/bin/bash
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
T25=/usr/lib/jvm/temurin-25-jdk-amd64/bin/java
SER="-XX:MaxRAM=2g -XX:MaxRAMPercentage=50 -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError --enable-native-access=ALL-UNNAMED -Xmn24m -XX:TrimNativeHeapInterval=10000"
./watch2.sh /tmp/mem/i2h.nmt & w=$!
$T25 -jar $J bench --full --peers proxy --scenarios held --no-profile --proxy-jar /tmp/mem/new.jar --out /tmp/mem/out-i2h --proxy-jvm-opts "$SER -XX:NativeMemoryTracking=summary" > /tmp/mem/i2h.log 2>&1
kill $w 2>/dev/null
echo "i2h $(grep -E '^\| proxy ' /tmp/mem/out-i2h/REPORT.md | head -1)"
JAR=/tmp/mem/new.jar ./burst.sh
