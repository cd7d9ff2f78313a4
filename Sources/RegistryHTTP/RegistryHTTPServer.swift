// The HTTP/SSE registry server: being written (issue 6).
