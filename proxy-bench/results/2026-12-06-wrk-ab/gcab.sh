cd /tmp/perf
for p in 18904 18911 18912 18913; do taskset -c 0 wrk -t1 -c64 -d20s -s /tmp/perf/post.lua http://127.0.0.1:$p/v1/chat/completions | grep Requests/sec; taskset -c 0 wrk -t1 -c256 -d5s -s /tmp/perf/post.lua http://127.0.0.1:$p/v1/chat/completions | grep Requests/sec; done
for c in 256 64 16; do ./ab.sh $c 6 nginx=18902 j17def=18904 t25zgc=18911 t25serial=18912 t25par=18913; done
