#!/bin/bash
# Before/after of the usage scanner's structure-only skip, one run: the jar of b314302 (before) and
# this change (after), JDK 17 defaults, each on core 1 beside Nginx (the harness's site config,
# proxy_buffering off); mock, upstream and load on core 0.
#  1. bulk-ab.sh: 32 MiB embeddings-shaped answers from bulk-upstream.py, 5 rotating rounds of 10.
#  2. wrk-ab.sh: the closed-loop rows (594-byte chat answers), 16/64/256 connections, 3 rotating
#     rounds of 5 s after warm.sh.
S=/work/main/proxy-bench/scripts
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
R=/tmp/s9/rig; H=$(cd "$(dirname "$0")" && pwd)
cd $R; export KEYS_FILE=$R/keys.txt; ulimit -n 20000
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
(taskset -c 0 python3 $H/bulk-upstream.py 18950 32 > bulk-upstream.log 2>&1 &)
rm -f nginx/access.log; taskset -c 1 nginx -c $R/nginx/nginx.conf
rm -rf b a bb ba; mkdir -p b a bb ba
$S/start-proxy.sh $R/b 18961 /tmp/s9/before.jar "" java
$S/start-proxy.sh $R/a 18962 /tmp/s9/after.jar "" java
MOCK_PORT=18950 $S/start-proxy.sh $R/bb 18953 /tmp/s9/before.jar "" java
MOCK_PORT=18950 $S/start-proxy.sh $R/ba 18954 /tmp/s9/after.jar "" java
sleep 10
echo "# bulk: 32 MiB answers"
$H/bulk-ab.sh
echo "# wrk: chat answers"
$S/warm.sh 18961 18962 > /dev/null 2>&1
for c in 16 64 256; do ROUNDS=${ROUNDS:-3} $S/wrk-ab.sh $c 5 before=18961 after=18962 nginx=18902; done
pkill -f /tmp/s9/before.jar; pkill -f /tmp/s9/after.jar; nginx -s stop -c $R/nginx/nginx.conf; pkill -f 'bench.jar mock'; pkill -f bulk-upstream.py
