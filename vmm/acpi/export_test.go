package acpi

// AMLPkgLength exposes amlPkgLength to the external tests.
var AMLPkgLength = amlPkgLength
