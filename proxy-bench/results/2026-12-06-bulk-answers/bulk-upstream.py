import socket, sys, threading, random
# An upstream that answers any request with an embeddings-like JSON body of N MiB (numbers, few strings).
port=int(sys.argv[1]); mib=int(sys.argv[2])
random.seed(1)
parts=[]; size=0
parts.append(b'{"object":"list","data":[')
i=0
while size < mib*1024*1024:
    vec=','.join('%.8f'%random.uniform(-1,1) for _ in range(256)).encode()
    p=b'{"object":"embedding","index":%d,"embedding":[%s]},'%(i,vec); parts.append(p); size+=len(p); i+=1
parts.append(b'{"object":"embedding","index":-1,"embedding":[]}],"model":"m","usage":{"prompt_tokens":5,"total_tokens":5}}')
body=b''.join(parts)
head=b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n'%len(body)
resp=head+body
def serve(c):
    buf=b''
    try:
        while True:
            while b'\r\n\r\n' not in buf:
                d=c.recv(65536)
                if not d: return
                buf+=d
            h,_,rest=buf.partition(b'\r\n\r\n')
            cl=0
            for line in h.split(b'\r\n'):
                if line.lower().startswith(b'content-length:'): cl=int(line.split(b':')[1])
            while len(rest)<cl:
                d=c.recv(65536)
                if not d: return
                rest+=d
            buf=rest[cl:]
            c.sendall(resp)
    finally: c.close()
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(('127.0.0.1',port)); s.listen(128)
print('body',len(body),flush=True)
while True:
    c,_=s.accept(); threading.Thread(target=serve,args=(c,),daemon=True).start()
