#!/bin/bash
# Streams scenario, proxy jar with the connect answered in the same turn (inline.jar) and without (base.jar = 304105d), B A B
cd /work/main
i=0
for jar in inline base inline base; do i=$((i+1))
  java -jar proxy-bench/target/megallm-proxy-bench.jar bench --full --peers direct,nginx,proxy --scenarios streams --trials 2 --no-profile --proxy-jar /tmp/p17/$jar.jar --out /tmp/p17/aba-$i-$jar > /tmp/p17/aba-$i-$jar.log 2>&1
done
