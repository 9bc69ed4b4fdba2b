import sys,re,collections,statistics
d=collections.defaultdict(lambda: collections.defaultdict(list))
for l in open(sys.argv[1]):
    m=re.match(r'\d+ c=(\d+) (\S+) rps=([\d.]+) (.*) cpu_us/req=([\d.]+)',l)
    if not m: continue
    c,p,rps,rest,cpu=m.groups()
    d[(int(c),p)]['rps'].append(float(rps)); d[(int(c),p)]['cpu'].append(float(cpu))
    for k,v in re.findall(r'(p\d+(?:\.\d+)?)=([\d.]+)',rest): d[(int(c),p)][k].append(float(v))
for (c,p),v in sorted(d.items()):
    print('c=%d %-10s rps %7.0f  p50 %.2f p99 %.2f p99.9 %.2f cpu %.2f  (n=%d)'%(c,p,statistics.median(v['rps']),statistics.median(v['p50']),statistics.median(v['p99']),statistics.median(v['p99.9']),statistics.median(v['cpu']),len(v['rps'])))
