#!/bin/bash
# Held streams, the image's JVM as shipped and with -XX:TrimNativeHeapInterval=10000 (wrapper /tmp/p17/java-trim), alternating
cd /work/main
for i in 1 2; do
  java -jar proxy-bench/target/megallm-proxy-bench.jar bench --full --peers nginx,proxy-image --scenarios held --no-profile --out /tmp/p17/held-$i-shipped > /tmp/p17/held-$i-shipped.log 2>&1
  MEGALLM_BENCH_IMAGE_JAVA=/tmp/p17/java-trim java -jar proxy-bench/target/megallm-proxy-bench.jar bench --full --peers proxy-image --scenarios held --no-profile --out /tmp/p17/held-$i-trim > /tmp/p17/held-$i-trim.log 2>&1
done
