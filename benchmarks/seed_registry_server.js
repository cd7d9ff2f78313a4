// A stand-in for seed 000's registry-server.js, which the seed describes (an HTTP server on
// port 3001 serving the registry JSON with CORS, reading ~/.peer-plan/servers.json) but whose
// source is not in the notes: on every GET /registry it reads the file, parses it and answers
// it as JSON, as that description does. What `serve`'s /registry is measured against.
//
// Usage: node benchmarks/seed_registry_server.js <servers.json> <port>   (prints "listening")
"use strict";
const fs = require("fs");
const http = require("http");

const [file, port] = process.argv.slice(2);
http
  .createServer((req, res) => {
    if (req.method === "GET" && req.url === "/registry") {
      let body;
      try {
        body = JSON.stringify(JSON.parse(fs.readFileSync(file, "utf8")));
      } catch (e) {
        body = JSON.stringify({ servers: [] });
      }
      res.writeHead(200, {
        "Content-Type": "application/json",
        "Access-Control-Allow-Origin": "*",
        "Content-Length": Buffer.byteLength(body),
      });
      res.end(body);
    } else {
      res.writeHead(404, { "Content-Length": 0 });
      res.end();
    }
  })
  .listen(Number(port), "127.0.0.1", () => console.log("listening"));
