cd /tmp/perf
for p in 18921 18922; do taskset -c 0 wrk -t1 -c64 -d10s -s /tmp/perf/post.lua http://127.0.0.1:$p/v1/chat/completions > /dev/null; done
for c in 64 256 16; do for i in 1 2; do ./ab.sh $c 5 epoll=18921 uring=18922; done; done
