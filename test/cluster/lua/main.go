// A Lua 5.1 interpreter for the tests of the Argo CD health check, built on
// gopher-lua: the Lua that Argo CD embeds (argo-cd util/lua), so the check
// runs on the same interpreter it runs on in Argo CD.
//
//	lua -v        prints the version
//	lua -         runs the chunk on stdin (what test/gitops/health.ts does)
//	lua FILE      runs FILE
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"

	lua "github.com/yuin/gopher-lua"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: lua -v | lua - | lua FILE")
		os.Exit(2)
	}
	if os.Args[1] == "-v" {
		version := "(unknown)"
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, dep := range info.Deps {
				if dep.Path == "github.com/yuin/gopher-lua" {
					version = dep.Version
				}
			}
		}
		fmt.Println("gopher-lua", version, "("+lua.LuaVersion+")")
		return
	}
	L := lua.NewState()
	defer L.Close()
	var err error
	if os.Args[1] == "-" {
		var src []byte
		if src, err = io.ReadAll(os.Stdin); err == nil {
			err = L.DoString(string(src))
		}
	} else {
		err = L.DoFile(os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
