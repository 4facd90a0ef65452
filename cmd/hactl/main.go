// Command hactl is the hapair node agent and its local tools.
package main

import (
	"os"

	"github.com/hapair/hapair/hactl/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
