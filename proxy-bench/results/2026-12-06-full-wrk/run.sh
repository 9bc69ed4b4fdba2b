#!/bin/bash
set -u
cd /work/wt-perf
J=/tmp/perf/v1/megallm-proxy-bench.jar
OUT=proxy-bench/results/2026-12-06-full-wrk
PEERS=direct,haproxy,nginx,proxy,proxy-image
run() { name=$1; shift; echo "== part $name $(date -u +%H:%M:%S)"; flock -x /tmp/cpu.lock java -jar $J bench --full --proxy-jar /tmp/perf/v1/megallm-proxy.jar --peers $PEERS --out $OUT/$name "$@" > /tmp/perf/full-$name.log 2>&1; echo "   exit $? $(date -u +%H:%M:%S)"; }
run 3-streams --trials 3 --scenarios streams,ttfb --no-profile
run 4-held-slow-profile --scenarios held,slow,profile
echo "== before/after $(date -u +%H:%M:%S)"; flock -x /tmp/cpu.lock /tmp/perf/ba.sh > /tmp/perf/ba.out 2>&1; echo "   done $(date -u +%H:%M:%S)"
run 2-closed-own-client --trials 3 --scenarios closed --no-profile
