// lkparticipant: the cheapest LiveKit participants that still carry a call, for measuring
// what the harness's own caller costs against LiveKit's Go SDK (benchmarks/caller_cost.py).
//
//	lkparticipant -mode publish -url ws://127.0.0.1:7880 -rooms r1,r2 -ogg turns.ogg -duration 60s
//	lkparticipant -mode echo    -url ws://127.0.0.1:7880 -rooms r1,r2
//
// publish: one participant per room, as `lk load-test`'s audio publisher does, publishes an
// Opus track from a pre-encoded Ogg file in real time (looping it; no encoder runs) and, as
// the harness's caller must, subscribes to the agent's track and reads every packet of it
// (without decoding it). After -duration it leaves and prints its counts as JSON.
//
// echo: a stand-in agent, one participant of kind AGENT per room: it publishes one audio
// track and sends back, every 20 ms, the next Opus packet the room's caller sent (or a
// silent one when there is none: an agent's track never goes quiet), so a caller hears its
// own speech as the agent's reply. No decoding, no encoding.
//
// Both print "ready <n>" on stdout once every room has its participant connected (and, for
// publish, its track published and the agent's subscribed), and leave on SIGTERM or SIGINT.
// The API key and secret come from LIVEKIT_API_KEY and LIVEKIT_API_SECRET.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/livekit/server-sdk-go/v2/pkg/oggreader"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

type counts struct {
	Mode       string `json:"mode"`
	Rooms      int    `json:"rooms"`
	Connected  int64  `json:"connected"`
	Published  int64  `json:"published"`
	Subscribed int64  `json:"subscribed"`
	RxPackets  int64  `json:"rx_packets"`
	RxBytes    int64  `json:"rx_bytes"`
	TxPackets  int64  `json:"tx_packets"`
	Errors     int64  `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
}

var (
	stats    counts
	errMu    sync.Mutex
	ready    sync.WaitGroup
	opusCaps = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
)

func fail(err error) {
	atomic.AddInt64(&stats.Errors, 1)
	errMu.Lock()
	if stats.FirstError == "" {
		stats.FirstError = err.Error()
	}
	errMu.Unlock()
	fmt.Fprintln(os.Stderr, "lkparticipant:", err)
}

// loopingOpus hands out the Ogg file's Opus packets in order, for ever, each with its own
// duration; the SDK's writer paces them in real time.
type loopingOpus struct {
	lksdk.BaseSampleProvider
	packets   [][]byte
	durations []time.Duration
	next      int
}

func readOgg(path string) (*loopingOpus, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, _, err := oggreader.NewOggReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: not an Ogg Opus file: %w", path, err)
	}
	p := &loopingOpus{}
	for {
		pkt, err := r.ReadPacket()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		d, err := oggreader.ParsePacketDuration(pkt)
		if err != nil || d <= 0 {
			continue
		}
		p.packets = append(p.packets, pkt)
		p.durations = append(p.durations, d)
	}
	if len(p.packets) == 0 {
		return nil, fmt.Errorf("%s: no Opus packets", path)
	}
	return p, nil
}

func (p *loopingOpus) clone() *loopingOpus {
	return &loopingOpus{packets: p.packets, durations: p.durations}
}

func (p *loopingOpus) NextSample(ctx context.Context) (media.Sample, error) {
	i := p.next % len(p.packets)
	p.next++
	atomic.AddInt64(&stats.TxPackets, 1)
	return media.Sample{Data: p.packets[i], Duration: p.durations[i]}, nil
}

func (p *loopingOpus) CurrentAudioLevel() uint8 { return 30 }

// drain reads every packet of a subscribed track until it ends, counting them.
func drain(track *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	for {
		n, _, err := track.Read(buf)
		if err != nil {
			return
		}
		atomic.AddInt64(&stats.RxPackets, 1)
		atomic.AddInt64(&stats.RxBytes, int64(n))
	}
}

func publisher(url, key, secret, room string, audio *loopingOpus, done <-chan struct{}) {
	subscribed := make(chan struct{})
	var once sync.Once
	cb := lksdk.NewRoomCallback()
	cb.ParticipantCallback.OnTrackSubscribed = func(t *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
		if t.Kind() != webrtc.RTPCodecTypeAudio || rp.Kind() != lksdk.ParticipantAgent {
			return
		}
		atomic.AddInt64(&stats.Subscribed, 1)
		once.Do(func() { close(subscribed) })
		go drain(t)
	}
	r, err := lksdk.ConnectToRoom(url, lksdk.ConnectInfo{
		APIKey: key, APISecret: secret, RoomName: room,
		ParticipantIdentity: "go-caller-" + room,
	}, cb, lksdk.WithAutoSubscribe(true))
	if err != nil {
		fail(fmt.Errorf("connect %s: %w", room, err))
		ready.Done()
		return
	}
	defer r.Disconnect()
	atomic.AddInt64(&stats.Connected, 1)
	track, err := lksdk.NewLocalTrack(opusCaps)
	if err != nil {
		fail(err)
		ready.Done()
		return
	}
	provider := audio.clone()
	track.OnBind(func() {
		if err := track.StartWrite(provider, nil); err != nil {
			fail(err)
		}
	})
	if _, err := r.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{
		Name: "caller-microphone", Source: livekit.TrackSource_MICROPHONE,
	}); err != nil {
		fail(fmt.Errorf("publish %s: %w", room, err))
		ready.Done()
		return
	}
	atomic.AddInt64(&stats.Published, 1)
	select {
	case <-subscribed:
	case <-time.After(20 * time.Second):
		fail(fmt.Errorf("room %s: no agent track within 20s", room))
	case <-done:
	}
	ready.Done()
	<-done
}

// opusSilence is one 20 ms Opus frame of silence (a CELT-only frame with no energy).
var opusSilence = []byte{0xf8, 0xff, 0xfe}

func echo(url, key, secret, room string, done <-chan struct{}) {
	local, err := webrtc.NewTrackLocalStaticSample(opusCaps, "agent-voice", "echo-"+room)
	if err != nil {
		fail(err)
		ready.Done()
		return
	}
	heard := make(chan []byte, 64)
	cb := lksdk.NewRoomCallback()
	cb.ParticipantCallback.OnTrackSubscribed = func(t *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
		if t.Kind() != webrtc.RTPCodecTypeAudio {
			return
		}
		atomic.AddInt64(&stats.Subscribed, 1)
		go func() {
			for {
				pkt, _, err := t.ReadRTP()
				if err != nil {
					return
				}
				atomic.AddInt64(&stats.RxPackets, 1)
				select {
				case heard <- pkt.Payload:
				default: // more than a second behind: drop, stay real time
				}
			}
		}()
	}
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			payload := opusSilence
			select {
			case payload = <-heard:
			default:
			}
			if local.WriteSample(media.Sample{Data: payload, Duration: 20 * time.Millisecond}) == nil {
				atomic.AddInt64(&stats.TxPackets, 1)
			}
		}
	}()
	r, err := lksdk.ConnectToRoom(url, lksdk.ConnectInfo{
		APIKey: key, APISecret: secret, RoomName: room,
		ParticipantIdentity: "echo-agent-" + room,
		ParticipantKind:     lksdk.ParticipantAgent,
	}, cb, lksdk.WithAutoSubscribe(true))
	if err != nil {
		fail(fmt.Errorf("connect %s: %w", room, err))
		ready.Done()
		return
	}
	defer r.Disconnect()
	atomic.AddInt64(&stats.Connected, 1)
	if _, err := r.LocalParticipant.PublishTrack(local, &lksdk.TrackPublicationOptions{
		Name: "agent-voice", Source: livekit.TrackSource_MICROPHONE,
	}); err != nil {
		fail(fmt.Errorf("publish %s: %w", room, err))
	} else {
		atomic.AddInt64(&stats.Published, 1)
	}
	ready.Done()
	<-done
}

func main() {
	mode := flag.String("mode", "", "publish or echo")
	url := flag.String("url", os.Getenv("LIVEKIT_URL"), "the LiveKit server (default: LIVEKIT_URL)")
	rooms := flag.String("rooms", "", "comma-separated room names, one participant each")
	ogg := flag.String("ogg", "", "publish: the Ogg Opus file to play (looped)")
	duration := flag.Duration("duration", 0, "leave after this long (default: at SIGTERM)")
	flag.Parse()
	key, secret := os.Getenv("LIVEKIT_API_KEY"), os.Getenv("LIVEKIT_API_SECRET")
	names := strings.FieldsFunc(*rooms, func(r rune) bool { return r == ',' })
	switch {
	case *mode != "publish" && *mode != "echo":
		fmt.Fprintln(os.Stderr, "lkparticipant: -mode publish or -mode echo")
		os.Exit(2)
	case *url == "" || key == "" || secret == "":
		fmt.Fprintln(os.Stderr, "lkparticipant: give -url (or LIVEKIT_URL), LIVEKIT_API_KEY and LIVEKIT_API_SECRET")
		os.Exit(2)
	case len(names) == 0:
		fmt.Fprintln(os.Stderr, "lkparticipant: -rooms: at least one room")
		os.Exit(2)
	}
	stats.Mode, stats.Rooms = *mode, len(names)
	var audio *loopingOpus
	if *mode == "publish" {
		var err error
		if audio, err = readOgg(*ogg); err != nil {
			fmt.Fprintln(os.Stderr, "lkparticipant: -ogg:", err)
			os.Exit(2)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	ready.Add(len(names))
	for _, room := range names {
		wg.Add(1)
		go func(room string) {
			defer wg.Done()
			if *mode == "publish" {
				publisher(*url, key, secret, room, audio, done)
			} else {
				echo(*url, key, secret, room, done)
			}
		}(room)
	}
	go func() {
		ready.Wait()
		fmt.Printf("ready %d\n", atomic.LoadInt64(&stats.Connected))
	}()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	var timeout <-chan time.Time
	if *duration > 0 {
		timeout = time.After(*duration)
	}
	select {
	case <-stop:
	case <-timeout:
	}
	close(done)
	wg.Wait()
	out, _ := json.Marshal(&stats)
	fmt.Println(string(out))
}
