// A Node `ws` service as teams write one: every client gets {"seq": N, "ts": <ms>}
// ten times a second from one global counter; no resume, so what a client misses
// while disconnected is lost. GET /health answers 200.
//
//   npm install && PORT=8080 node server.js
const http = require("http");
const { WebSocketServer } = require("ws");

const port = Number(process.env.PORT || 8080);
const server = http.createServer((req, res) => {
  if (req.url === "/health") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ status: "ok", clients: wss.clients.size }));
    return;
  }
  res.writeHead(404);
  res.end();
});
const wss = new WebSocketServer({ server });

let seq = 0;
setInterval(() => {
  seq += 1;
  const message = JSON.stringify({ seq, ts: Date.now() });
  for (const client of wss.clients) {
    if (client.readyState === 1) client.send(message);
  }
}, 100);

process.on("SIGTERM", () => {
  for (const client of wss.clients) client.close(1001, "server shutting down");
  server.close(() => process.exit(0));
});

server.listen(port, "127.0.0.1", () => {
  console.log(`listening on ${port}`);
});
