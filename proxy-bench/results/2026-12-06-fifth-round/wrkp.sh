#!/bin/bash
# wrk-ab.sh with postp.lua: p50..p99.9 per run, CPU per request; rotating order
conns=$1; secs=$2; shift 2
lua=/tmp/p16/postp.lua
peers=("$@")
for rep in $(seq 1 "${ROUNDS:-3}"); do
for i in "${!peers[@]}"; do
  peer=${peers[$(( (i + rep - 1) % ${#peers[@]} ))]}
  name=${peer%%=*}; port=${peer#*=}
  taskset -c 0 wrk -t1 -c$conns -d3s -s "$lua" http://127.0.0.1:$port/v1/chat/completions >/dev/null 2>&1
  pid=$(ss -ltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  c0=$(awk '{print $14+$15}' /proc/$pid/stat)
  out=$(taskset -c 0 wrk -t1 -c$conns -d${secs}s -s "$lua" http://127.0.0.1:$port/v1/chat/completions 2>&1)
  c1=$(awk '{print $14+$15}' /proc/$pid/stat)
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  lat=$(echo "$out" | grep lat_ms | sed 's/lat_ms //')
  reqs=$(echo "$out" | awk '/requests in/{print $1}')
  err=$(echo "$out" | grep -E "Non-2xx|errors" | tr '\n' ' ')
  echo "$rep c=$conns $name rps=$rps $lat cpu_us/req=$(echo "scale=2; ($c1-$c0)*10000/$reqs" | bc) $err"
done; done
