#!/bin/bash
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar; S=/work/main/proxy-bench/scripts; R=/tmp/s8/rig; T=/tmp/s8/tier
export KEYS_FILE=$R/keys.txt; cd $T
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -rf k2; $S/start-proxy.sh $T/k2 18962 /tmp/s8/before.jar "" java $JOPTS
sleep 6; pid=$(ss -ltnp "sport = :18962" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
taskset -c 0 wrk -t1 -c64 -d100s -s $S/post.lua http://127.0.0.1:18962/v1/chat/completions > wrk-q.out &
for t in 30 60 90; do sleep 30; echo "== t=$t"; jcmd $pid Compiler.queue | head -30; 
  jcmd $pid Compiler.codelist | awk '{m=$4} $2==4{l4[m]=1} $2==3{l3[m]=1} END{n=0; for(k in l3) if(!(k in l4) && k ~ /io\.megallm|io\.netty/) n++; print "L3-only netty/megallm:", n}'
  jcmd $pid Compiler.codelist | grep -E "UpstreamHandler.channelRead\(|RelayCall.onResponseHead" | awk '{print $2,$4}'
  awk '{print "compiler ticks:"}' /dev/null; for tsk in /proc/$pid/task/*; do c=$(cat $tsk/comm); case "$c" in C1*|C2*) echo "$c $(awk '{print $14+$15}' $tsk/stat)";; esac; done
done
wait; grep Requests wrk-q.out
pkill -f before.jar; pkill -f 'bench.jar mock'
