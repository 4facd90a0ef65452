package commands

// Builtin returns a registry holding every console command: help and the
// ha_* commands, dashboard, passwd and exit. The console builds one at
// start-up and shares it between sessions; each session brings its own Env.
//
// Operators may run ha_status, ha_events, dashboard, help, passwd (their
// own password) and exit; every other command needs the admin role.
func Builtin() *Registry {
	r := NewRegistry()
	for _, c := range []*Command{
		haStatus(),
		haEvents(),
		haClusterStop(),
		haClusterStart(),
		haSwitchover(),
		haMaintenance(),
		haTeardown(),
		haDeploy(),
		haPairingToken(),
		dashboardCommand(),
		passwdCommand(),
		exitCommand(),
	} {
		r.Register(c)
	}
	return r
}
