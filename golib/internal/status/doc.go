// Package status holds what the coordinator reports to the C side: a
// bounded queue of log records that the main loop drains into the server
// log, and the snapshot of containers and counters published to shared
// memory for the SQL views.
//
// Nothing here calls C. Goroutines other than the main loop never block on
// it: a full log queue drops records and counts them.
package status
