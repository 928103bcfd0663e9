package webhook

import "testing"

// The Standard Webhooks reference vector.
func TestSignReferenceVector(t *testing.T) {
	key, err := DecodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestNewSecretRoundTrip(t *testing.T) {
	s, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	k, err := DecodeSecret(s)
	if err != nil || len(k) != 32 {
		t.Fatalf("DecodeSecret(%q) = %d bytes, %v", s, len(k), err)
	}
	if _, err := DecodeSecret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"); err == nil {
		t.Fatal("secret without whsec_ accepted")
	}
}
