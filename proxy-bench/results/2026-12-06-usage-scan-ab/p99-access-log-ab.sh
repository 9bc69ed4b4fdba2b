#!/bin/bash
# p99 at 16/64: what sets the proxy's tail. Nginx, the proxy as shipped, FLUSH_AT 16 KB, access log off, young gen 256 MB.
cd /tmp/p16
S=/work/main/proxy-bench/scripts
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/p16/nginx/nginx.conf
export KEYS_FILE=/tmp/p16/keys.txt
$S/start-proxy.sh /tmp/p16/f1 18941 /work/wt-run/proxy-server/target/megallm-proxy.jar "" java
$S/start-proxy.sh /tmp/p16/f2 18942 /work/wt-var/proxy-server/target/megallm-proxy.jar "" java
$S/start-proxy.sh /tmp/p16/f3 18943 /work/wt-run/proxy-server/target/megallm-proxy.jar "" java -Dlogback.configurationFile=/tmp/p16/off.xml
$S/start-proxy.sh /tmp/p16/f4 18944 /work/wt-run/proxy-server/target/megallm-proxy.jar "" java -Xmn256m
sleep 8
$S/warm.sh 18941 18942 18943 18944
for c in 16 64; do ROUNDS=5 $S/wrk-ab.sh $c 5 nginx=18902 shipped=18941 flush16k=18942 logoff=18943 young256=18944; done
