package download

// Allowed lends the phase machine's table to the external tests.
var Allowed = allowed
