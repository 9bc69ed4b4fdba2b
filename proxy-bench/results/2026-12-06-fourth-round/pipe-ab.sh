#!/bin/bash
# The peers' console into a file (bench-file.jar = 296b1f1) or through a pipe drained by the harness (bench-pipe.jar), A B A B, wrk rows only
cd /work/main
i=0
for b in file pipe file pipe; do i=$((i+1))
  java -jar /tmp/p17/bench-$b.jar bench --full --peers nginx,proxy --scenarios wrk --trials 3 --no-profile --out /tmp/p17/pipe-ab-$i-$b > /tmp/p17/pipe-ab-$i-$b.log 2>&1
done
