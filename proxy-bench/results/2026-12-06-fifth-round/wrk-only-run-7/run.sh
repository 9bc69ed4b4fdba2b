java -jar proxy-bench/target/megallm-proxy-bench.jar bench --full --scenarios wrk --peers nginx,proxy --out /tmp/p18/wrk7   # at 71dadaa, under flock -x -o /tmp/cpu.lock
