cd /tmp/perf
rss() { pid=$(ss -ltnp "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); grep VmRSS /proc/$pid/status | awk '{print $2/1024 " MB"}'; }
for p in 18931 18932 18933 18934; do taskset -c 0 wrk -t1 -c64 -d15s -s /tmp/perf/post.lua http://127.0.0.1:$p/v1/chat/completions > /dev/null; taskset -c 0 wrk -t1 -c256 -d5s -s /tmp/perf/post.lua http://127.0.0.1:$p/v1/chat/completions >/dev/null; echo "$p after warm-up RSS $(rss $p)"; done
for c in 64 256; do ./ab.sh $c 5 j17=18931 j17xmn32=18932 img2g=18933 img2gxmn32=18934; done
for p in 18931 18932 18933 18934; do echo "$p end RSS $(rss $p)"; done
