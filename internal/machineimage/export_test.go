package machineimage

// The fast clock of the internal tests, for the tests of package
// machineimage_test.
type FakeClock = fakeClock

// NewFakeClock is a fake clock at a fixed time.
var NewFakeClock = newFakeClock
