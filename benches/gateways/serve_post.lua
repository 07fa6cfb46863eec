-- wrk script: POST /v1/messages to `smsroute serve` (JSON, bearer key from the environment).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("SERVE_API_KEY") or "")
wrk.body = '{"to":"+447700900123","from":"ACME","text":"Benchmark message from wrk"}'
