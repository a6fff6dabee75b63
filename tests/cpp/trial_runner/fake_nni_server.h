// A loopback HTTP server that plays NNI's trial command channel in tests: PUT bodies are
// recorded, GETs pop a queued answer or get 408 (as NNI does after its 1 s long poll).
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace dataproxy::testing {

class FakeNniServer {
 public:
  struct Put {
    std::string target;
    std::string content_type;
    std::string body;
  };

  FakeNniServer() : acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeNniServer() {
    stopping_ = true;
    boost::system::error_code ec;
    boost::asio::ip::tcp::socket poke(io_);
    poke.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
    thread_.join();
  }

  std::string url(const std::string& channel = "trial1") const {
    return "http://localhost:" + std::to_string(port_) + "/env/local-env/" + channel;
  }
  /// Queues one answer for a GET: HTTP status and body.
  void queue_get(int status, std::string body) {
    std::lock_guard<std::mutex> lock(mutex_);
    gets_.emplace_back(status, std::move(body));
  }
  /// Status for every PUT (200 by default).
  void set_put_status(int status) { put_status_ = status; }
  std::vector<Put> puts() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return puts_;
  }
  int get_count() const { return get_count_; }

 private:
  void serve() {
    namespace http = boost::beast::http;
    while (!stopping_) {
      boost::asio::ip::tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stopping_) break;
      boost::beast::flat_buffer buffer;
      http::request<http::string_body> req;
      http::read(socket, buffer, req, ec);
      if (ec) continue;
      http::response<http::string_body> res;
      res.version(req.version());
      res.keep_alive(false);
      if (req.method() == http::verb::put) {
        std::lock_guard<std::mutex> lock(mutex_);
        puts_.push_back(
            {std::string(req.target()), std::string(req[http::field::content_type]), req.body()});
        res.result(static_cast<unsigned>(put_status_.load()));
      } else {
        ++get_count_;
        std::lock_guard<std::mutex> lock(mutex_);
        if (gets_.empty()) {
          res.result(408);
          res.body() = "Request Timeout";
        } else {
          res.result(static_cast<unsigned>(gets_.front().first));
          res.body() = gets_.front().second;
          res.set(http::field::content_type, "application/json");
          gets_.pop_front();
        }
      }
      res.prepare_payload();
      http::write(socket, res, ec);
      socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    }
  }

  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> put_status_{200};
  std::atomic<int> get_count_{0};
  mutable std::mutex mutex_;
  std::deque<std::pair<int, std::string>> gets_;
  std::vector<Put> puts_;
};

}  // namespace dataproxy::testing
