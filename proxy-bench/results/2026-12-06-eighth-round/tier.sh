#!/bin/bash
# Does steady wrk load leave hot request-path methods at tier 3? JDK 17 defaults on CPU 1, mock + wrk on CPU 0.
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar; S=/work/main/proxy-bench/scripts; R=/tmp/s8/rig; T=/tmp/s8/tier
export KEYS_FILE=$R/keys.txt; cd $T
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -rf k1; $S/start-proxy.sh $T/k1 18961 /tmp/s8/before.jar "" java
sleep 6; pid=$(ss -ltnp "sport = :18961" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
levels() { jcmd $pid Compiler.codelist 2>/dev/null | awk '$0 ~ /io\.netty|io\.megallm/ {l[$2]++} END{for(k in l) printf "L%s=%d ", k, l[k]; print ""}'; }
for i in 1 2 3 4 5 6 7 8; do
  out=$(taskset -c 0 wrk -t1 -c64 -d15s -s $S/post.lua http://127.0.0.1:18961/v1/chat/completions | awk '/Requests\/sec/{print $2}')
  echo "round $i (15 s busy) req/s=$out  levels: $(levels)"
  jcmd $pid Compiler.codelist > codelist-$i.txt 2>/dev/null
done
sleep 10; echo "after 10 s idle: $(levels)"
for i in 9 10 11; do
  out=$(taskset -c 0 wrk -t1 -c64 -d15s -s $S/post.lua http://127.0.0.1:18961/v1/chat/completions | awk '/Requests\/sec/{print $2}')
  echo "round $i req/s=$out  levels: $(levels)"; jcmd $pid Compiler.codelist > codelist-$i.txt 2>/dev/null
  sleep 10; echo "  after 10 s idle: $(levels)"
done
pkill -f before.jar; pkill -f 'bench.jar mock'
