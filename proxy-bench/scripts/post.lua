wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello! Please answer in one short sentence."}]}'
wrk.headers["User-Agent"] = "megallm-bench/1.0"
wrk.headers["Accept"] = "application/json"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench-client-key"
wrk.headers["X-Stainless-Lang"] = "java"
wrk.headers["X-Stainless-Retry-Count"] = "0"
