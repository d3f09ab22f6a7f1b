package acpi

// AMLPkgLength exposes amlPkgLength to the external tests.
var AMLPkgLength = amlPkgLength

// EISAID exposes eisaID to the external tests.
var EISAID = eisaID
