package auth_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/exportd/exportd/server/auth"
)

// Example shows the `exportd token` → `exportd serve` path: mint with the local key, verify, then
// decide capability and coverage for a client whose enterprise the caller looked up.
func Example() {
	dir, err := os.MkdirTemp("", "exportd-auth-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	keyPath := filepath.Join(dir, "signing.pem")

	key, kid, err := auth.LoadOrCreateSigningKey(keyPath)
	if err != nil {
		fmt.Println(err)
		return
	}
	scope, err := auth.ParseScope("enterprises/b8e2f1a0-4c3d-4e5f-9a1b-2c3d4e5f6a7b:subtree")
	if err != nil {
		fmt.Println(err)
		return
	}
	token, err := auth.Mint(key, kid, auth.Claims{
		Sub:          "users/0e0e0e0e-4c3d-4e5f-9a1b-2c3d4e5f6a7b",
		Capabilities: []string{auth.CapRead},
		Scopes:       []auth.Scope{scope},
	}, time.Hour, time.Now())
	if err != nil {
		fmt.Println(err)
		return
	}

	v, err := auth.New(context.Background(), auth.Config{SigningKeyPath: keyPath})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer v.Close()
	p, err := v.Verify(token)
	if err != nil {
		fmt.Println(err)
		return
	}
	client := auth.Target{
		Kind:          auth.KindClient,
		Ref:           "clients/11111111-4c3d-4e5f-9a1b-2c3d4e5f6a7b",
		EnterpriseRef: "enterprises/b8e2f1a0-4c3d-4e5f-9a1b-2c3d4e5f6a7b", // resolved from data
	}
	enterprise, ok := p.CoveringEnterprise(client)
	fmt.Println(p.Subject)
	fmt.Println("read:", p.Can(auth.CapRead), "create:", p.Can(auth.CapCreate))
	fmt.Println("covered:", ok, "restrict to:", enterprise)

	expired, err := auth.Mint(key, kid, auth.Claims{Sub: p.Subject}, -time.Hour, time.Now())
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = v.Verify(expired)
	fmt.Println(errors.Is(err, auth.ErrUnauthorized), auth.Reason(err))
	// Output:
	// users/0e0e0e0e-4c3d-4e5f-9a1b-2c3d4e5f6a7b
	// read: true create: false
	// covered: true restrict to: enterprises/b8e2f1a0-4c3d-4e5f-9a1b-2c3d4e5f6a7b
	// true expired
}
