#!/bin/bash
# The issue-16 full run, 2026-12-06 third round (commit 19255fb): four parts of one --full run, each under the CPU lock.
set -u
cd /work/main
J=proxy-bench/target/megallm-proxy-bench.jar
OUT=proxy-bench/results/2026-12-06-full-wrk-3
PEERS=direct,haproxy,nginx,proxy,proxy-image
run() { name=$1; shift; echo "== part $name $(date -u +%H:%M:%S)"; flock -x /tmp/cpu.lock java -jar $J bench --full --peers $PEERS --out $OUT/$name "$@" > /tmp/fr/full3-$name.log 2>&1; echo "   exit $? $(date -u +%H:%M:%S)"; }
run 1-wrk-open --trials 5 --scenarios wrk,open --no-profile
run 3-streams --trials 3 --scenarios streams,ttfb --no-profile
run 4-held-slow-profile --scenarios held,slow,profile
# not run this time (session time): run 2-closed-own-client --trials 3 --scenarios closed --no-profile
