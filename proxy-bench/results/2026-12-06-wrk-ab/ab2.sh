cd /tmp/perf
for p in 18921 18922; do taskset -c 0 wrk -t1 -c64 -d15s -s /tmp/perf/post.lua http://127.0.0.1:$p/v1/chat/completions | grep Requests/sec; taskset -c 0 wrk -t1 -c256 -d5s -s /tmp/perf/post.lua http://127.0.0.1:$p/v1/chat/completions | grep Requests/sec; done
for c in 64 256 16; do ./ab.sh $c 5 nginx=18902 epoll=18921 uring=18922; done
