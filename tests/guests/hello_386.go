package main

// hello is the smoke-test guest (hello_386.s).
func hello()

// Lines hello prints.
var (
	helloMsg      = "hello from guest\n"
	helloBadMagic = "hello: not booted by multiboot: EAX = "
	helloCmdline  = "cmdline: ["
	helloModules  = "modules: "
	helloModule   = "module: "
	helloOpen     = " ["
	helloClose    = "]\n"
)
