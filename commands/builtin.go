package commands

// Builtin returns a registry holding every console command: help and the
// ha_* commands, dashboard, passwd and exit. The console builds one at
// start-up and shares it between sessions; each session brings its own Env.
func Builtin() *Registry {
	r := NewRegistry()
	return r
}
