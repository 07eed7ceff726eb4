package blockdev

// SetBufferedLoop makes new loop devices run buffered instead of with direct I/O.
func SetBufferedLoop(on bool) { bufferedLoop = on }
