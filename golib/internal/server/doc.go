// Package server is the coordinator's Unix-socket server. Backends keep one
// connection per session; the server authenticates the peer (same OS user,
// and the HELLO's pid must be the connecting process), answers requests in
// the frame format of package protocol, and tells the Handler when a
// session ends, which is the moment its containers must go.
//
// The shape follows net/http and ttrpc: New, Serve, Shutdown, Close.
package server
