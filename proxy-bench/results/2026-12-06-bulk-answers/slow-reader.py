import socket, sys, time
# Sends one request, reads nothing for `pause` seconds (the upstream fills every buffer and is held
# back), then reads everything as fast as it can; prints the time of the read-back phase.
port=int(sys.argv[1]); pause=float(sys.argv[2])
body=b'{"model":"text-embedding-3-small","input":"hi"}'
s=socket.create_connection(('127.0.0.1',port))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64*1024)
s.sendall(b'POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n'%len(body)+body)
time.sleep(pause)
t0=time.time(); buf=b''; 
while b'\r\n\r\n' not in buf: buf+=s.recv(65536)
head,_,rest=buf.partition(b'\r\n\r\n')
cl=[int(l.split(b':')[1]) for l in head.split(b'\r\n') if l.lower().startswith(b'content-length')]
n=len(rest); total=cl[0] if cl else None
while total is None or n<total:
    d=s.recv(262144)
    if not d: break
    n+=len(d)
t=time.time()-t0
print(f"port {port}: {n} bytes read back in {t:.3f} s ({n/t/1e6:.0f} MB/s)")
