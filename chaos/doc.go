// Package chaos owns the history model and the offline checkers of Quire's
// Jepsen-style chaos suite. It holds no cluster code: a run records what
// clients and the nemesis did, and the checkers judge that history alone, so
// any saved run can be re-checked later, or with a newer checker.
//
// Quire promises that nothing acknowledged is ever lost. The checkers test
// that promise and the ordering guarantees around it: lost writes,
// inconsistent offsets, duplicates, per-producer reorders, consumer skips and
// rewinds, and values nobody produced. The final read, one pass over every
// partition at the end of a run, is taken as the true log contents.
//
// Recording a run, streaming it to a file as JSON lines:
//
//	rec := chaos.NewRecorder(file)
//	rec.Record(chaos.Op{Process: 1, Type: chaos.Invoke, Kind: chaos.Produce,
//		Topic: "t", Offset: -1, Value: "1-17", Producer: "p1", Seq: 17})
//	// ... produce returns
//	rec.Record(chaos.Op{Process: 1, Type: chaos.OK, Kind: chaos.Produce,
//		Topic: "t", Partition: 3, Offset: 812, Value: "1-17"})
//
// Checking it, then or later:
//
//	h, err := chaos.ReadHistory(file)
//	for _, r := range chaos.CheckAll(h) {
//		if r.Violations > 0 {
//			log.Print(r)
//		}
//	}
//	a := chaos.CheckAvailability(h)
package chaos
