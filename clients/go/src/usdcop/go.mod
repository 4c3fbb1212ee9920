// The Go client as a module (package usdcop/observation). The versions are the ones it is built
// and tested with: Debian's packaged modules, in GOPATH mode offline (make test-go).
module usdcop

go 1.19

require (
	github.com/golang/protobuf v1.3.5
	google.golang.org/grpc v1.33.3
)
