package hapb

// Word is the database role as an operator reads it: "primary",
// "standby", "stopped", "not initialised" or "unknown".
func (r DatabaseRole) Word() string {
	switch r {
	case DatabaseRole_DATABASE_ROLE_PRIMARY:
		return "primary"
	case DatabaseRole_DATABASE_ROLE_STANDBY:
		return "standby"
	case DatabaseRole_DATABASE_ROLE_STOPPED:
		return "stopped"
	case DatabaseRole_DATABASE_ROLE_UNINITIALIZED:
		return "not initialised"
	}
	return "unknown"
}
