import sys,re,statistics as st
rows={}
for line in open(sys.argv[1]):
    m=re.match(r'\d c=(\d+) (\S+) rps=([\d.]+) p50=\S+ p99=([\d.]+)(us|ms) cpu_us/req=([\d.]+)',line)
    if not m: continue
    c,n,r,p,u,cpu=m.groups(); p=float(p)/(1000 if u=='us' else 1)
    rows.setdefault((n,int(c)),[]).append((float(r),p,float(cpu)))
for (n,c),v in sorted(rows.items(), key=lambda x:(x[0][1],x[0][0])):
    print(f"{c:4d} {n:12s} rps={st.median([x[0] for x in v]):8.0f} p99={st.median([x[1] for x in v]):6.2f} cpu={st.median([x[2] for x in v]):5.1f}  all={[round(x[0]) for x in v]}")
