#!/bin/bash
# The console's copy of the access log capped at ACCESS_LOG_CONSOLE_RATE (100 lines a second by
# default) against the copy of every line (d0ac8a3, as shipped before), and against the file only
# (ACCESS_LOG_CONSOLE=false, same new jar); JDK 17 defaults, beside Nginx; wrk-ab.sh rotating,
# 7 rounds of 5 s at 16, 64 and 256 connections.
J=/tmp/s12/bench.jar
S=/work/main/proxy-bench/scripts
W=/tmp/s12/rate; mkdir -p $W; cd $W; cp /tmp/s9/rig/keys.txt keys.txt; export KEYS_FILE=$W/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/s9/rig/nginx/nginx.conf
rm -rf a b c
$S/start-proxy.sh $W/a 18991 /tmp/s12/proxy-literals.jar "" java
$S/start-proxy.sh $W/b 18992 /tmp/s12/proxy-rate.jar "" java
EXTRA_ENV="ACCESS_LOG_CONSOLE=false" $S/start-proxy.sh $W/c 18993 /tmp/s12/proxy-rate.jar "" java
sleep 8; $S/warm.sh 18991 18992 18993 > /dev/null 2>&1
for c in 16 64 256; do ROUNDS=7 $S/wrk-ab.sh $c 5 every-line=18991 rate-100=18992 file-only=18993 nginx=18902; done
echo "console bytes: every-line $(stat -c %s a/out.log) rate-100 $(stat -c %s b/out.log) file-only $(stat -c %s c/out.log)"
echo "access.log bytes: every-line $(du -cb a/logs/access*.log | tail -1) rate-100 $(du -cb b/logs/access*.log | tail -1) file-only $(du -cb c/logs/access*.log | tail -1)"
grep -c "more than 100 access lines" b/out.log
for port in 18991 18992 18993; do pid=$(ss -ltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); kill $pid; done; sleep 3
nginx -s stop -c /tmp/s9/rig/nginx/nginx.conf; pkill -f 'bench.jar mock'
rm -rf $W/a $W/b $W/c /tmp/s9/rig/nginx/access.log
