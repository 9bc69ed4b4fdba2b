import re,sys,collections
txt=open(sys.argv[1]).read()
evs=txt.split('jdk.ObjectAllocationSample {')[1:]
def mb(w):
    v,u=w.split(); v=float(v.replace(',',''))
    return v*{'bytes':1e-6,'byte':1e-6,'kB':1e-3,'MB':1,'GB':1e3}[u]
seen=set(); by=collections.Counter(); cls=collections.Counter(); tot=0; thr=collections.Counter()
for e in evs:
    t=re.search(r'eventThread = "([^"]+)"',e).group(1)
    w=mb(re.search(r'weight = (.+)',e).group(1))
    if t not in seen: seen.add(t); continue
    thr[t]+=w
    if not t.startswith('megallm-io'): continue
    c=re.search(r'objectClass = (\S+)',e).group(1)
    fr=[l.strip() for l in e.split('stackTrace = [')[1].split('\n')[1:] if l.strip() and l.strip()!=']' and l.strip()!='}']
    # first frame outside java.*/jdk.*/io.netty.util
    key=[f.split('(')[0] for f in fr[:4]]
    by[(c,' < '.join(key))]+=w; cls[c]+=w; tot+=w
print('threads',{k:round(v) for k,v in thr.most_common(8)})
print('event loop total MB',round(tot))
for (c,k),w in by.most_common(int(sys.argv[2]) if len(sys.argv)>2 else 30):
    print(f'{100*w/tot:5.1f}% {c}  {k}')
