#!/bin/bash
# once the proxy holds > 18000 fds: RSS, NMT, heap info, class histogram
while true; do
  for pid in $(pgrep -f 'NativeMemoryTracking'); do
    grep -q megallm-proxy.jar /proc/$pid/cmdline 2>/dev/null || continue
    n=$(ls /proc/$pid/fd 2>/dev/null | wc -l)
    if [ "$n" -gt 18000 ]; then sleep 2; { echo "fds=$n $(grep VmRSS /proc/$pid/status) $(date +%T)"; jcmd $pid VM.native_memory summary | grep -E '^-|Total'; jcmd $pid GC.class_histogram | head -60; } > $1; exit; fi
  done
  sleep 1
done
